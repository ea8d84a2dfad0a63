"""Image automation: markers in manifests, tag policies, the registry client, write-back to git."""
