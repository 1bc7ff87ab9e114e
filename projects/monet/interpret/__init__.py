"""Interpretability tools for a trained Monet: routing statistics, expert examples, expert masking.

  domains.py   text domains of a corpus (stdlib: by file path) cut into token windows
  routing.py   per-expert routing mass per domain; an expert's top-activating contexts
  masking.py   the paper's domain masking: purge experts whose routing mass on a target domain is
               >= 2x the next domain's, then measure the loss change on target vs other domains

An expert here is a pair (i, j) of one routing group (one router, shared by moe_groups layers);
its score on a token is the paper's sum_h g1_hi * g2_hj (Fig. 2; it can exceed 1).
"""
from projects.monet.interpret.domains import STDLIB_DOMAINS, domain_of, domain_windows
from projects.monet.interpret.masking import (MaskedExperts, domain_losses, masked_model,
                                              masking_experiment, select_experts)
from projects.monet.interpret.routing import expert_scores, routing_mass, top_contexts

__all__ = ["STDLIB_DOMAINS", "domain_of", "domain_windows", "routing_mass", "expert_scores",
           "top_contexts", "select_experts", "MaskedExperts", "masked_model", "domain_losses",
           "masking_experiment"]
