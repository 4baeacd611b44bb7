"""Container networking: records, IPAM, port publishing and the netavark driver."""
