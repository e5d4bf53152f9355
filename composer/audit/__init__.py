"""Auditing an image: licences, linkage, SBOMs and the policy gate."""
