"""Image assembly: trees of files from verified .debs, effects, and OCI output."""
