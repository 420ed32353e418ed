"""Layer 4, faces: how taucg is used and shown. The CLI, the daemon that
composes the workers, its socket API, metrics, the main log and the
reports. May import every layer; nothing imports a face."""
