"""Not a pcaspy IOC: its __main__ part loops forever without a SimpleServer."""
import time

if __name__ == "__main__":
    while True:
        time.sleep(0.05)
