"""The lab: ``reglab bench`` reruns the papers' claims on small real data."""
