"""Looking inside trained networks: exact receptive fields, top patches per unit, galleries (Zeiler & Fergus)."""
