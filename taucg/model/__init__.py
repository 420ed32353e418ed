"""Layer 2, model: pure meaning made from readings and config. The
property table, the tiers, rates, thresholds and alerts, rules, health
and recovery decisions. No writes, no D-Bus. Imports config and readers."""
