"""`knowledge up`: the processes of the platform, started, supervised and stopped together."""
