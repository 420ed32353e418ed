"""Layer 3, actors: everything that changes the system. The systemd D-Bus
client, apply, placement, isolation, recovery, zombie reaping, the files
taucg keeps (histories, recovery state) and its audit and performance
records. Imports config, readers and model."""
