"""What stands between a request and the platform: tokens, body and stream limits, uploads."""
