"""The Kubernetes API server, asked directly for what the engine cannot tell before it acts: which
kinds it serves and how (discovery), and whether it would accept every object of a commit (a
server-side dry run). Never used to change anything: applying is the engine's job."""
