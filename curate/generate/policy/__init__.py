"""The policy toolkit: the policy file, slot filling with held-out families and values, and the refusal,
benign_near_miss and abstain generators."""
