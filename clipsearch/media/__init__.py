"""file -> record: walking folders, reading and decoding images, perceptual hashes, thumbnails.

Nothing here knows about the model, the database or the index.
"""
