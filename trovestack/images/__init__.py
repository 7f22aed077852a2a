"""Images: the guest image build (guest), datastore container
images (datastore) and the guest image check (verify)."""
