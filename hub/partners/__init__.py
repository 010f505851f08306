"""Partner onboarding's domain rules, free of I/O but for reading the sanctions list:

- :mod:`~hub.partners.vat`: VAT identification numbers, their format per EU country;
- :mod:`~hub.partners.names`: company and person names normalised for comparison, and their
  similarity;
- :mod:`~hub.partners.sanctions`: the EU Financial Sanctions Files list, and screening against it;
- :mod:`~hub.partners.callbacks`: which callback URLs a partner may give;
- :mod:`~hub.partners.webhooks`: Standard Webhooks signatures of the notifications sent to them.
"""
