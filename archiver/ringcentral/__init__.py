"""The RingCentral side: login (auth), call-log paging and streamed downloads (client), pacing, retries."""
