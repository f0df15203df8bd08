"""The suite's file readers, one per kind of file, shared by the data modules and the scorers.

* :mod:`dermlab.files.listing`: the one folder lister (image suffixes in any case, hidden and ``__MACOSX`` files
  ignored, skipped files counted);
* :mod:`dermlab.files.io`: the one image reader (EXIF orientation, RGB, clear errors naming the file);
* :mod:`dermlab.files.tables`: the one table reader (ground truths, metadata, submissions, lists) as spreadsheets
  and archives export them: byte-order mark, CRLF, spaces around values, Dataverse's ``.tab``; European-locale
  exports refused with the row named;
* :mod:`dermlab.files.jpeg`: full-size RGB JPEG decoding by OpenCV (the same pixels as Pillow);
* :mod:`dermlab.files.masks`: the one mask reader and the official scorer's threshold (lesion = value > 128);
* :mod:`dermlab.files.hdf5`: images stored as JPEG bytes in an HDF5 file (ISIC 2024), addressed like files.

Primitives: they import nothing from ``datamodules``, ``lightning_modules``, ``callbacks`` or the commands.
"""
