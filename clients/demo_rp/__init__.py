"""Demo relying party: runs as 高新技术企业认定 (gaoqi) or 科技型中小企业评价 (kexiaoqi) to show
single sign-on and single logout through the provider (`make demo`, docs/demo.md)."""

from clients.demo_rp.app import SYSTEMS, create_app

__all__ = ["SYSTEMS", "create_app"]
