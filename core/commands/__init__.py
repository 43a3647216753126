"""CLI subcommands: each module here has add_parser(subparsers) and run(args) -> exit status."""

COMMANDS = ["train", "info", "embed", "fewshot", "augment", "report", "samplers", "tune"]
