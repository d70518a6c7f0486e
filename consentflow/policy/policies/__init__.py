"""Policy versions as TOML data files, one per version."""
