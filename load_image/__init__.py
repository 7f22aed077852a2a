"""Load Trove guest images into Glance and register them with Trove."""
