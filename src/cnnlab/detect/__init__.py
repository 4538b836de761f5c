"""Week 3 of the course: detection data (scenes, VOC, COCO), classification with localisation,
landmarks, sliding windows (naive and convolutional); YOLO and region proposals build on it."""
