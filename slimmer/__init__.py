"""DeepRebirth slimming passes (streamline and branch merging) guided by a Profile: not built yet."""

__all__: list[str] = []
