"""What the host and VM test tiers share: one way to run the `taucg`
command, one way to write a config file, and a blocking systemd client."""
