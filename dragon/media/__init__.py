"""Media helpers shared by the tasks: probing, tool argv builders, geometry, sniffing."""
