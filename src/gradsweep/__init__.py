"""gradsweep: sweep dense nets and trace per-layer gradients (vanishing/exploding)."""
