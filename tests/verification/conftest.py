from tests.admin.conftest import console, staff_member  # noqa: F401
