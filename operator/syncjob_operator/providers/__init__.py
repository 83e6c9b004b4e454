"""Remote APIs behind the Provider interface."""
