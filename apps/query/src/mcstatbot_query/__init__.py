"""mcstatbot query service: Minecraft Java and Bedrock status and player lists, cached and coalesced."""
