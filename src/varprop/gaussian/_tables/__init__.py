"""Package data: the moment tables (``moment_tables.npz``) and the script that generates them (``generate``)."""
