"""The Computing Platform (FastAPI): Inventory, Grid Map, semantic decode, change inference,
provisioning and publishing. ``platform_api.main.create_app`` builds the app."""

__version__ = "0.1.0"
