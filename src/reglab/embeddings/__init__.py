"""Post-hoc embedding conditioning (whitening and friends) and STS evaluation."""
