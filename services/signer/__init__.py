"""The signer stage: DKIM-signs accepted Submissions and fans them out into Deliveries."""
