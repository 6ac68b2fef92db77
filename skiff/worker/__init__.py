"""The node side: turning a container request into a running container."""
