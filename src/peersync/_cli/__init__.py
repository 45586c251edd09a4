"""The command-line shell: a file per subcommand group over the public API."""
