"""The control plane: one asyncio process that owns all of skiff's state."""
