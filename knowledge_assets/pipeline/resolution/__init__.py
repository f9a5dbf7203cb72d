"""Entity resolution: normalise names, cluster a batch's mentions into entities, score clusters."""
