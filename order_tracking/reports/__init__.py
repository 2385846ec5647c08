"""What engineers read besides the alert: the Data Docs health page and its data, the offline
Data Docs assets, and ``doctor``'s preflight of the deployment target."""
