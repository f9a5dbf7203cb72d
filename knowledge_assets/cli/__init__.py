"""The `knowledge` command: one argparse app, one module per group of subcommands."""
