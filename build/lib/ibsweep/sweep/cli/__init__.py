"""The ``ibsweep`` command line: parsing, the commands, their printed output and exit codes."""
