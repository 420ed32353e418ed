"""Layer 0, config: the TOML schema, loading and validation, and the value
types (sizes, CPU sets, unit names) every other layer speaks in. Imports
nothing from taucg outside this package."""
