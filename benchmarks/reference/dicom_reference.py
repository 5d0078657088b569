"""pydicom / nibabel / imagecodecs reference for test/dicom.test.ts.

  volume <folder> <out.f32>        stacked rescaled pixel arrays in position order, as float32 [columns, rows, slices]
                                   (C order) into <out.f32>; JSON of shape, spacing, affine, SOP instance order and
                                   nibabel's single-slice affine on stdout
  variant <folder> <out> <kind>    copies of a series: implicit, deflated, bigendian, rescale, rle, jpegls,
                                   jpeg-lossless (SV1, 1.2.840.10008.1.2.4.70), jpeg-lossless-p3 (.57), j2k, htj2k, jpegxl
                                   (compressed by pydicom's RLE encoder or imagecodecs, not by the code under test)
  enhanced <folder> <out.dcm>      one Enhanced MR multi-frame file of the series, frames shuffled, per-frame positions
                                   and a per-frame rescale; prints JSON of the frames' rescale
  seg <file>                       JSON of a SEG as pydicom reads it (segments, per-frame references, pixel array)
  batch <commands.json>            several of these in one process (a JSON list of argument lists); prints a JSON
                                   list of what each printed
  nifti <file> <out.i64>           JSON of a NIfTI file as nibabel reads it (sform, qform, codes, shape); its data
                                   as int64 (C order) into <out.i64>
"""

import base64
import copy
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)


def series(folder):
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith('.dcm'))
    dss = [pydicom.dcmread(f) for f in files]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    order = np.argsort([float(np.dot(np.array(d.ImagePositionPatient, dtype=float), normal)) for d in dss])
    return [files[i] for i in order], [dss[i] for i in order], iop, normal


def rescaled(ds):
    arr = ds.pixel_array.astype(np.float64)
    slope = float(getattr(ds, 'RescaleSlope', 1) or 1)
    inter = float(getattr(ds, 'RescaleIntercept', 0) or 0)
    return arr * slope + inter


def volume(folder, out):
    files, dss, iop, normal = series(folder)
    vol = np.stack([rescaled(d) for d in dss], axis=-1)  # [rows, columns, slices]
    vol = np.ascontiguousarray(vol.transpose(1, 0, 2)).astype(np.float32)  # [columns, rows, slices]
    vol.tofile(out)
    ps = [float(x) for x in dss[0].PixelSpacing]
    p0 = np.array(dss[0].ImagePositionPatient, dtype=float)
    step = (np.array(dss[-1].ImagePositionPatient, dtype=float) - p0) / (len(dss) - 1)
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * ps[1]
    lps[:3, 1] = iop[3:] * ps[0]
    lps[:3, 2] = step
    lps[:3, 3] = p0
    affine = np.diag([-1, -1, 1, 1]) @ lps
    # nibabel's own DICOM geometry of the first slice (its axes are rows, columns: swapped against ours)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

    w = dicomwrappers.wrapper_from_data(dss[0])
    print(json.dumps({
        'shape': list(vol.shape),
        'spacing': [ps[1], ps[0], float(np.linalg.norm(step))],
        'affine': affine.tolist(),
        'sop': [str(d.SOPInstanceUID) for d in dss],
        'files': [os.path.basename(f) for f in files],
        'nibabel_affine': np.asarray(w.affine).tolist(),
    }))


def variant(folder, out, kind):
    os.makedirs(out, exist_ok=True)
    files = sorted(f for f in os.listdir(folder) if f.endswith('.dcm'))
    for n, f in enumerate(files):
        ds = pydicom.dcmread(os.path.join(folder, f))
        path = os.path.join(out, f)
        if kind == 'implicit':
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            ds.save_as(path, enforce_file_format=True)
        elif kind == 'deflated':
            ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
            ds.save_as(path, enforce_file_format=True)
        elif kind == 'bigendian':
            arr = ds.pixel_array
            ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
            ds.PixelData = arr.astype(arr.dtype.newbyteorder('>')).tobytes()
            pydicom.dcmwrite(path, ds, little_endian=False, implicit_vr=False, enforce_file_format=True)
        elif kind == 'rescale':
            ds.RescaleSlope = f'{0.5 + 0.25 * (n % 3):g}'
            ds.RescaleIntercept = f'{-3 - n}'
            ds.save_as(path, enforce_file_format=True)
        elif kind == 'rle':
            ds.compress(RLELossless, encoding_plugin='pydicom')
            ds.save_as(path, enforce_file_format=True)
        else:
            import imagecodecs

            arr = ds.pixel_array
            raw = arr.view(np.uint16) if arr.dtype == np.int16 else arr
            if kind == 'jpegls':
                frame, uid = imagecodecs.jpegls_encode(raw), JPEGLSLossless
            elif kind == 'jpeg-lossless':
                frame, uid = imagecodecs.jpeg8_encode(raw, lossless=True, predictor=1, bitspersample=16), JPEGLosslessSV1
            elif kind == 'jpeg-lossless-p3':
                frame, uid = imagecodecs.jpeg8_encode(raw, lossless=True, predictor=3, bitspersample=16), '1.2.840.10008.1.2.4.57'
            elif kind == 'j2k':
                frame, uid = imagecodecs.jpeg2k_encode(raw, level=0, codecformat='J2K', reversible=True), JPEG2000Lossless
            elif kind == 'htj2k':
                frame, uid = imagecodecs.htj2k_encode(raw), '1.2.840.10008.1.2.4.201'
            elif kind == 'jpegxl':
                frame, uid = imagecodecs.jpegxl_encode(raw, lossless=True), '1.2.840.10008.1.2.4.110'
            else:
                raise SystemExit(f'unknown variant {kind}')
            ds.PixelData = encapsulate([bytes(frame)])
            ds['PixelData'].VR = 'OB'
            if kind == 'jpegxl':  # newer than pydicom 3.0's dictionary
                from pydicom._uid_dict import UID_dictionary

                UID_dictionary.setdefault(uid, ('JPEG XL Lossless', 'Transfer Syntax', '', '', 'JPEGXLLossless'))
            ds.file_meta.TransferSyntaxUID = uid
            ds.save_as(path, enforce_file_format=True)


def enhanced(folder, out):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    files, dss, iop, normal = series(folder)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(dss))
    first = dss[0]
    ds = Dataset()
    for kw in ['PatientName', 'PatientID', 'StudyInstanceUID', 'StudyDate', 'StudyTime', 'StudyID', 'AccessionNumber', 'ReferringPhysicianName', 'FrameOfReferenceUID', 'Modality']:
        if kw in first:
            setattr(ds, kw, getattr(first, kw))
    ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.4.1'  # Enhanced MR Image Storage
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 77
    ds.Rows, ds.Columns = first.Rows, first.Columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.NumberOfFrames = len(dss)
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = list(first.ImageOrientationPatient)
    pm = Dataset()
    pm.PixelSpacing = list(first.PixelSpacing)
    pm.SliceThickness = first.SliceThickness
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    frames = []
    rescale = []
    for n, i in enumerate(order):
        d = dss[i]
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = list(d.ImagePositionPatient)
        fg.PlanePositionSequence = Sequence([pp])
        pv = Dataset()
        pv.RescaleSlope = f'{1 + (n % 2):g}'
        pv.RescaleIntercept = f'{-(n % 5)}'
        pv.RescaleType = 'US'
        fg.PixelValueTransformationSequence = Sequence([pv])
        per.append(fg)
        frames.append(d.pixel_array.astype(np.int16))
        rescale.append({'position_index': int(i), 'slope': float(pv.RescaleSlope), 'intercept': float(pv.RescaleIntercept)})
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack(frames).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(out, enforce_file_format=True)
    print(json.dumps({'sop': str(ds.SOPInstanceUID), 'frames': rescale}))


def code(item):
    return {'value': str(item.CodeValue), 'scheme': str(item.CodingSchemeDesignator), 'meaning': str(item.CodeMeaning)}


def seg(path):
    ds = pydicom.dcmread(path)
    frames = []
    for fg in ds.PerFrameFunctionalGroupsSequence:
        src = fg.DerivationImageSequence[0].SourceImageSequence[0]
        frames.append({
            'segment': int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
            'sop': str(src.ReferencedSOPInstanceUID),
            'sopClass': str(src.ReferencedSOPClassUID),
            'frameNumber': int(src.ReferencedFrameNumber) if 'ReferencedFrameNumber' in src else None,
            'position': [float(x) for x in fg.PlanePositionSequence[0].ImagePositionPatient],
            'dimension': [int(x) for x in fg.FrameContentSequence[0].DimensionIndexValues],
        })
    px = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns).astype(np.uint8)
    print(json.dumps({
        'sopClass': str(ds.SOPClassUID),
        'modality': str(ds.Modality),
        'segmentationType': str(ds.SegmentationType),
        'study': str(ds.StudyInstanceUID),
        'frameOfReference': str(ds.FrameOfReferenceUID),
        'patientID': str(ds.PatientID),
        'referencedSeries': str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID),
        'referencedInstances': len(ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence),
        'orientation': [float(x) for x in ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient],
        'segments': [{
            'number': int(s.SegmentNumber),
            'label': str(s.SegmentLabel),
            'algorithmType': str(s.SegmentAlgorithmType),
            'category': code(s.SegmentedPropertyCategoryCodeSequence[0]),
            'type': code(s.SegmentedPropertyTypeCodeSequence[0]),
        } for s in ds.SegmentSequence],
        'frames': frames,
        'pixels': base64.b64encode(px.tobytes()).decode(),
        'shape': list(px.shape),
    }))


def nifti(path, out):
    import nibabel as nib

    img = nib.load(path)
    data = np.asarray(img.dataobj)
    print(json.dumps({
        'shape': list(data.shape),
        'sform': img.get_sform().tolist(),
        'qform': img.get_qform().tolist(),
        'codes': [int(img.header['sform_code']), int(img.header['qform_code'])],
        'zooms': [float(z) for z in img.header.get_zooms()],
    }))
    np.ascontiguousarray(data).astype(np.int64).tofile(out)


COMMANDS = {'volume': volume, 'variant': variant, 'enhanced': enhanced, 'seg': seg, 'nifti': nifti}


def batch(spec):
    import contextlib
    import io

    outputs = []
    for cmd, *args in json.load(open(spec)):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            COMMANDS[cmd](*args)
        outputs.append(buf.getvalue())
    print(json.dumps(outputs))


if __name__ == '__main__':
    cmd, *args = sys.argv[1:]
    {**COMMANDS, 'batch': batch}[cmd](*args)
