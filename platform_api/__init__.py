"""The Computing Platform (FastAPI): Inventory, Grid Map, provisioning, change inference."""
