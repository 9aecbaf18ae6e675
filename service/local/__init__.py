"""Starting the stack's dependencies on one machine (`sllen run`, the integration tests)."""
