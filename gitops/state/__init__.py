"""Pulumi's state backend as this project uses it: where a stack's files live, who holds the
stack, and what a killed run leaves behind. Below the engine: no Pulumi process is started here."""
