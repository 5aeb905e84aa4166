"""The staff console (/admin/): clients, users, review queues, audit, dashboard."""
