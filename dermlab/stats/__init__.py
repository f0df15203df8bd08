"""Statistics on the numbers: intervals, paired tests, calibration, subgroups and skin tone."""
