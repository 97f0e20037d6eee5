"""Pure torch algorithms, no Flower: robust aggregation, Mime's base optimizers, ensemble
distillation. Strategies and clients call them; they import neither."""
