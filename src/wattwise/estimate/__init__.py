"""Estimate the footprint of training or serving a model before it runs: energy, operational and embodied
carbon, water and cost, each with a low–high range and every assumption stated."""
