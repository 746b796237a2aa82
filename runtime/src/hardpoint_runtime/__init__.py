"""hardpoint-runtime: the platform daemon ``hardpointd`` and the ``hardpoint`` CLI."""

__all__: list[str] = []
