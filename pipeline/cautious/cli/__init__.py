"""The command line: Invoke tasks (``invoke deploy``), the ``cautious`` program, the console."""
