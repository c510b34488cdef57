"""The ``ssh`` backend (real hosts over SSH, with Fabric) and the ``ssh-sandbox`` that proves it.

Importing this package stays light: Fabric and paramiko load with ``backend`` and ``remote``.
"""

__all__: list[str] = []
