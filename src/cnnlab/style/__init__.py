"""Neural style transfer (Gatys et al. 2015) as the course states it: costs, feature networks, optimisation."""
