"""How a process runs: CPU threads and workers, seeding."""
