"""The store stage: ``postline.events`` into the reporting database (``shared.store``)."""
