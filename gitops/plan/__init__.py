"""Plans: what a preview would change, rendered for people and tools, posted on pull requests."""
